"""One module per transfer method: cases() -> {fixture name: make(gen)}; see make_loss_fixtures.py."""
