"""The ``aioaccess`` command line: the only layer that knows every concrete class."""
