"""numpool's lab: the reproduced experiments and demos behind the ``numpool`` command."""
