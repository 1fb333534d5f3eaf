"""The sub-commands of ``bench``, one module per command group: each exposes ``add_<command>(parser)``,
which declares its options, and ``cmd_<command>(args)``, which runs it; ``bench.cli`` wires them up."""
