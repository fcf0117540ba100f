import sys

from testing.jira.server import main

sys.exit(main())
