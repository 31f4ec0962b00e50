import sys

from failurelens.cli import main

sys.exit(main())
