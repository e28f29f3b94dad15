"""Qt widgets of the dock; they hold no processing logic."""
