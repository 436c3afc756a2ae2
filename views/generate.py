"""Generate: sample text from a trained run, streamed, and see the choice made at every position."""

import streamlit as st

from babygpt.errors import BabyGPTError
from babygpt.figures.viz import next_token_figure
from babygpt.plain_text import markdown_literal
from babygpt.text.corpus import describe_token
from babygpt.text.text_stream import TextStream
from babygpt.training.sample import SamplingConfig, paced, prepare_prompt, stream
from ui import state
from ui.widgets import explain, run_picker

PACES = {"Full speed": None, "Typed out (30 tokens/s)": 30.0, "Slow (8 tokens/s)": 8.0}

st.title("Generate")
explain(
    "Sampling, one token at a time",
    "The model outputs a probability for every token in its vocabulary. We **sample** one, append it, and "
    "repeat. **Temperature** divides the logits before the softmax: below 1 the likely tokens get likelier "
    "(safer, more repetitive), above 1 the distribution flattens (more surprising). **Top-k** keeps only the k "
    "most likely tokens; **top-p** keeps the smallest set whose probabilities add up to p. A KV cache keeps "
    "earlier keys and values so each new token costs one position, not the whole context.",
    r"p_i = \frac{e^{z_i / T}}{\sum_j e^{z_j / T}}",
)

loaded = run_picker("generate_run")
if loaded is not None:
    flags = state.page_flags()  # the prompt and the last result outlive a page switch
    prompt = st.text_area("Prompt", flags.get("generate_prompt", ""), height=80, key="generate_prompt",
                          help="Leave empty to start from a new line.")
    flags["generate_prompt"] = prompt
    c1, c2, c3, c4, c5 = st.columns(5)
    max_new = c1.number_input("Max new tokens", 1, 5000, 300, key="gen_max_new",
                              help="How many tokens to generate.")
    temperature = c2.slider("Temperature", 0.0, 2.0, 0.8, 0.05, key="gen_temperature",
                            help="0 = always the most likely token; 1 = the model's own distribution.")
    top_k = c3.number_input("Top-k (0 = off)", 0, loaded.model_config.vocab_size, 0, key="gen_top_k",
                            help="Sample only among the k most likely tokens.")
    top_p = c4.slider("Top-p", 0.05, 1.0, 1.0, 0.05, key="gen_top_p",
                      help="Sample among the most likely tokens whose probabilities sum to p (1 = off).")
    seed = c5.number_input("Seed", 0, 2**31 - 1, 0, key="gen_seed", help="Same seed, same text.")
    pace = st.radio("Pace", list(PACES), horizontal=True, key="gen_pace",
                    help="Full speed shows the text in chunks as fast as the model writes; the slower paces type "
                         "it out one token at a time, to see (or show a class) that it is written token by token.")

    if st.button("Generate", type="primary", key="generate"):
        try:
            cfg = SamplingConfig(int(max_new), float(temperature), int(top_k), float(top_p), int(seed), candidates=10)
            encoded = prepare_prompt(loaded.tokenizer, prompt, loaded.model_config.block_size)
            for notice in encoded.notices:
                st.info(markdown_literal(notice))
            box = st.empty()
            text = prompt
            steps = []
            every = 4 if PACES[pace] is None else 1  # at full speed, redraw every few tokens
            tokens = stream(loaded.model, loaded.tokenizer, encoded.ids, cfg)
            for i, token in enumerate(paced(tokens, PACES[pace])):
                steps.append(token)
                text += token.piece  # decoded incrementally: half a character waits for its other half
                if i % every == 0:
                    box.code(text, language=None, wrap_lines=True)
            box.empty()
            flags["generated"] = {"run": loaded.info.id, "prompt": prompt, "steps": steps}
        except BabyGPTError as exc:
            st.error(markdown_literal(exc))

    result = flags.get("generated")
    if result and result["run"] == loaded.info.id and result["steps"]:
        steps = result["steps"]
        st.code(result["prompt"] + "".join(s.piece for s in steps), language=None, wrap_lines=True)
        cut = TextStream(loaded.tokenizer)
        for s in steps:
            cut.push(s.token_id)
        st.caption(f"{len(steps)} tokens generated."
                   + (" The last token ends partway through a character, so its bytes are not shown." if cut.pending
                      else ""))
        position = st.slider("Inspect generated position", 1, len(steps), 1, key="gen_position",
                             help="See the model's top candidates at that step; the red bar is the token it chose.")
        chosen = steps[position - 1]
        before = "".join(s.piece for s in steps[: position - 1])[-60:]
        context = "…" + (result["prompt"] + before)[-60:]  # the user's prompt and the model's text: shown as typed
        st.markdown(f"After {markdown_literal(repr(context))} the model chose "
                    f"**“{markdown_literal(describe_token(chosen.text))}”** with probability {chosen.prob:.1%}.")
        candidates = [(c.text, c.prob) for c in chosen.candidates]
        if chosen.token_id not in [c.token_id for c in chosen.candidates]:
            candidates.append((chosen.text, chosen.prob))
        st.plotly_chart(next_token_figure(candidates, chosen.text,
                                          f"Candidates at generated position {position}"), key="next_token_chart")
