"""flannel's reachability half: ``corecni-flanneld`` (see ``daemon``)."""
