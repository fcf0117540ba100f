import sys

from testing.github.server import main

sys.exit(main())
