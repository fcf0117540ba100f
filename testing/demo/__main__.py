import sys

from testing.demo.script import main

sys.exit(main())
