import sys

from corecni_contrib.flanneld.daemon import main

sys.exit(main())
