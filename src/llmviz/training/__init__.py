"""How the bundled nano-gpt was made: its training run, with a torch model of the same graph."""
