import sys

from glov.cli import main

sys.exit(main())
