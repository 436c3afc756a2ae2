import sys

from babygpt.cli import main

sys.exit(main())
