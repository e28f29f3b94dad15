"""The `opticstream` console command; each subcommand group lives in its own module."""
