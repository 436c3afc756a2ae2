"""Whatever a user types stays text, in real Chromium, on every page: names on the board, run names, an uploaded
file's name, a challenge's text name, a prompt and a link's value, each written to make an image, a link, a colour,
LaTeX or an address, are shown as typed, make no <img> or <a> with their address, and make no request to the
server they point at (a tiny HTTP server of the test's own on 127.0.0.1, which must get none)."""

from __future__ import annotations

import dataclasses
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright import sync_api as playwright_api

from babygpt.config import TrainConfig
from babygpt.orchestration.challenge import set_rules
from babygpt.orchestration.plan import plan_training
from babygpt.orchestration.runs import create_run
from babygpt.plain_text import WORD_JOINER
from babygpt.status import RunStatus
from babygpt.store.runs import MetricRow, RunStore
from babygpt.text.corpus import Corpus
from tests.browser_support import StreamlitServer, launch, new_page, page_button, require_chromium, train_demo_run
from tests.helpers import wait_for

pytestmark = pytest.mark.browser
TOKEN = "hostile-text-teacher-token"
VIEWER, OTHER, TWIN = "viewer-key-0000000000000", "other-key-00000000000000", "twin-key-000000000000000"


class LeakServer:
    """An HTTP server on 127.0.0.1 that only counts the requests a page makes to it (it must get none)."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        seen = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                seen.append(self.path)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclasses.dataclass(frozen=True)
class Hostile:
    """The strings a hostile student types, each pointing at the leak server."""

    port: int

    @property
    def at(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def run_label(self) -> str:  # a run's name: an image, a link, a colour, LaTeX and a bare address
        return f"![x](http://{self.at}/run.png) [link](http://{self.at}/link) :red[x] $x$ www.example.org"

    @property
    def cli_name(self) -> str:  # a run trained from the command line, named with a tag
        return f"<img src=http://{self.at}/tag.png> ![y](http://{self.at}/cli.png)"

    @property
    def handle(self) -> str:  # a classmate's name, seeded as an older server would have kept it
        return f"<img src=http://{self.at}/h.png> :red[b]"

    @property
    def short_name(self) -> str:  # a name typed in the name box: 24 characters at most
        return f"![](//{self.at})"

    @property
    def file_name(self) -> str:  # an uploaded file's name: no slash, but http: without // is an address too
        return f"![f](http:{self.at}) :red[f] $f$ www.example.org.txt"

    @property
    def corpus_name(self) -> str:  # the challenge's text, named by the teacher's upload
        return f"![c](http://{self.at}/corpus.png) <b>c</b> www.example.org"

    @property
    def prompt(self) -> str:
        return f"![p](http://{self.at}/p.png) :red[p]"


LEAKS_JS = """(needles) => {
  const attrs = ['src', 'href', 'xlink:href', 'data', 'srcset', 'poster', 'action'];
  const found = [];
  for (const el of document.querySelectorAll('*'))
    for (const a of attrs) {
      const v = el.getAttribute(a);
      if (v && needles.some(n => v.includes(n))) found.push(`<${el.tagName.toLowerCase()} ${a}="${v}">`);
    }
  const coloured = [...document.querySelectorAll('.stMarkdownColoredText')].map(e => e.textContent);
  if (coloured.length) found.push(`coloured text: ${coloured}`);
  return found;
}"""


def shown_text(page) -> str:
    """What the page shows (its text and the choice in each picker), with the invisible word joiners that keep an
    address from being linked taken out."""
    chosen = page.locator('input[role="combobox"]').evaluate_all("els => els.map(e => e.value)")
    return "\n".join([page.inner_text("body"), *chosen]).replace(WORD_JOINER, "")


def legend_texts(page) -> list[str]:
    return [t.replace(WORD_JOINER, "") for t in page.locator(".legendtext").all_text_contents()]


def check(page, leak: LeakServer, hostile: Hostile, name: str, shown: list[str] = ()) -> None:
    """No exception, no element with the leak server's or example.org's address, no request to it, and each of
    ``shown`` visible as typed."""
    page.wait_for_timeout(1500)  # charts and fragments settle
    assert not page.locator('[data-testid="stException"]').all_inner_texts(), name
    found = page.evaluate(LEAKS_JS, [hostile.at, "example.org"])
    assert not found, f"{name}: {found}"
    assert leak.requests == [], f"{name}: the page fetched {leak.requests}"
    text = shown_text(page)
    for s in shown:
        assert s in text, f"{name}: {s!r} is not shown as typed"


def seed(home, hostile: Hostile) -> None:
    """The viewer's runs named to attack, a classmate's name, and a challenge on a text named to attack, with a
    ranked entry each for the viewer and their namesake, one refused and one not ranked."""
    store = RunStore(home)
    store.set_handle(VIEWER, "Sam")
    store.set_handle(TWIN, "Sam")  # two students of one name, kept from before names were unique
    store.set_handle(OTHER, hostile.handle)
    corpus = Corpus.from_text(hostile.corpus_name, "the cat sat on the mat. " * 400)
    train = TrainConfig(max_iters=20, eval_interval=10, batch_size=4, device="cpu")
    plan = plan_training(corpus, "char", "gpt", train, n_layer=1, n_head=2, n_embd=32, block_size=16)
    rules = set_rules(corpus, "char", train.val_fraction, 20 * 4 * 16)
    challenge = store.create_challenge(rules.to_dict())

    def run(owner: str, name: str, steps: int, score: float | None, entered: bool, seed: int = 1) -> None:
        plan.train_config = dataclasses.replace(train, seed=seed)
        info = create_run(store, plan, name, owner=owner, status=RunStatus.RUNNING,
                          challenge={"id": challenge.id, "check_of": None} if entered else None)
        rows = [MetricRow(s, "train", 3.0 - s / 20, 1e-3, 1e4, s * 0.1) for s in range(0, steps + 1, 5)]
        rows += [MetricRow(s, "val", 3.1 - s / 20, None, None, s * 0.1) for s in range(0, steps + 1, 10)]
        store.log_metrics(info.id, rows)
        if score is not None:
            store.log_score(info.id, steps, score, rules.held_out_tokens)
        store.set_status(info.id, RunStatus.DONE if steps >= 20 else RunStatus.STOPPED)

    run(VIEWER, hostile.run_label, 20, None, entered=False)
    run(VIEWER, hostile.run_label + " again", 20, None, entered=False, seed=2)
    run(VIEWER, "viewer's entry", 20, 1.10, entered=True)
    run(TWIN, "twin's entry", 20, 1.20, entered=True, seed=3)
    run(OTHER, hostile.run_label, 30, 1.00, entered=True, seed=4)  # over the budget: refused, with its name
    run(OTHER, hostile.run_label + " stopped", 10, None, entered=True, seed=5)  # not ranked


@pytest.fixture
def hostile_server(tmp_path):
    require_chromium()
    leak = LeakServer()
    hostile = Hostile(leak.port)
    home = tmp_path / "runs"
    train_demo_run(home, name=hostile.cli_name)
    seed(home, hostile)
    server = StreamlitServer(home, BABYGPT_ADMIN_TOKEN=TOKEN).start()
    yield server, leak, hostile
    server.stop()
    leak.close()


def open_page(page, server, path: str, heading: str) -> None:
    page.goto(f"{server.url}/{path}")
    page.get_by_role("heading", name=heading, level=1).wait_for()


def test_hostile_names_stay_text_on_every_page(hostile_server):
    server, leak, hostile = hostile_server
    with playwright_api.sync_playwright() as p:
        browser = launch(p)
        page = new_page(browser)
        # a link whose value is an image: the warning quotes it as text
        page.goto(f"{server.url}/?user={VIEWER}&n_layer=![l](http://{hostile.at}/link.png)")
        page.get_by_role("heading", name="Data", level=1).wait_for()
        check(page, leak, hostile, "data", [f"n_layer='![l](http://{hostile.at}/link.png)' in the link"])

        # an upload whose file name is an image, a colour, LaTeX and an address
        page.get_by_text("Upload .txt files").click()
        page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
            [{"name": hostile.file_name, "mimeType": "text/plain", "buffer": b"the quick brown fox. " * 300}])
        wait_for(lambda: f"Current corpus: {hostile.file_name}" in shown_text(page), 60, "the upload's name")
        check(page, leak, hostile, "data-upload", [f"Current corpus: {hostile.file_name}"])

        # a run of that text: its name (the file's) on the live line here and in every page's sidebar
        open_page(page, server, "train?n_layer=1&n_embd=32&n_head=2&block_size=16&batch_size=4&max_iters=100000",
                  "Model & training")
        page.get_by_role("button", name="Start training").click()
        page.get_by_text("Training: step").first.wait_for()
        check(page, leak, hostile, "train-live", [f"gpt on {hostile.file_name}"])
        sidebar = page.get_by_test_id("stSidebar")
        wait_for(lambda: hostile.file_name in sidebar.inner_text().replace(WORD_JOINER, ""), 30, "the sidebar line")

        # the Class page: classmates' names, the challenge's text, a refused entry, and the legend of the curves
        open_page(page, server, "class", "Class")
        page.locator("table.class-board").last.wait_for()
        check(page, leak, hostile, "class", [hostile.handle, hostile.corpus_name, hostile.run_label])
        board = page.locator("table.class-board").first.inner_text()
        assert board.count("(you)") == 1 and "Sam (you)" in board, "two students named Sam: only one is you"
        assert any(t.startswith(hostile.handle) for t in legend_texts(page)), legend_texts(page)
        box = page.get_by_label("Your name on the board", exact=True)
        box.fill(hostile.short_name)
        box.press("Enter")
        wait_for(lambda: f"{hostile.short_name} (you)" in page.locator("table.class-board").first.inner_text(), 30,
                 "the new name on the board, as text")
        box.fill("sam")  # the twin's name: refused with a sentence that quotes it as text
        box.press("Enter")
        page.get_by_text("Another student already shows as 'sam' on the board").wait_for()
        check(page, leak, hostile, "class-named")

        # the teacher's controls name the training run by its owner's name and the file's name
        teacher = new_page(browser)
        open_page(teacher, server, "class", "Class")
        teacher.get_by_text("Teacher", exact=True).first.click()
        token = teacher.get_by_label("Admin token", exact=True)
        token.fill(TOKEN)
        token.press("Enter")
        teacher.get_by_role("button", name="Stop it").wait_for()
        check(teacher, leak, hostile, "class-teacher", [f"{hostile.short_name} · gpt on {hostile.file_name}"])
        teacher.close()

        open_page(page, server, "train", "Model & training")
        page_button(page, "Stop").click()
        page.get_by_text("Stopped: step").first.wait_for()

        # Runs: the table, the overlay's legend, the picker, and the messages that name a run
        open_page(page, server, "runs", "Runs")
        page.locator(".legendtext").first.wait_for()
        assert hostile.run_label + " · " in " ".join(legend_texts(page)), legend_texts(page)
        check(page, leak, hostile, "runs")
        page.get_by_test_id("stCheckbox").get_by_text("Show everyone's runs").click()
        page.wait_for_timeout(1500)
        options = page.get_by_role("option")
        wait_for(lambda: options.count() or page.get_by_role("combobox", name="Run", exact=True).click(), 60,
                 "the run picker to open (a rerun in progress closes it)", poll=1.0)
        assert any(o.startswith(hostile.cli_name) for o in options.all_inner_texts()), options.all_inner_texts()
        options.filter(has_text=hostile.cli_name).first.click()
        page.get_by_role("button", name="Make active").click()
        page.get_by_text("is now the active run").wait_for()
        check(page, leak, hostile, "runs-active", [f"{hostile.cli_name} · "])
        page.get_by_role("button", name="Delete", exact=True).click()
        page.get_by_text("was trained from the command line").wait_for()
        check(page, leak, hostile, "runs-refused")

        # the pages that look at a trained run name it in their picker; Generate quotes the prompt
        for path, heading in (("attention", "Attention"), ("inside", "Inside the model"), ("lessons", "Lessons")):
            open_page(page, server, path, heading)
            page.get_by_role("combobox", name="Run", exact=True).wait_for()
            check(page, leak, hostile, path, [hostile.cli_name])  # the active run, chosen on Runs
        open_page(page, server, "generate", "Generate")
        page.get_by_role("textbox", name="Prompt").fill(hostile.prompt)
        page.locator('input[aria-label="Max new tokens"]').fill("20")
        page.get_by_role("button", name="Generate").click()
        page.get_by_text("tokens generated").wait_for()
        check(page, leak, hostile, "generate", [hostile.cli_name, "the model chose"])
        browser.close()
    assert leak.requests == []
