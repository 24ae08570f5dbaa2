"""Training the bundled models from random initial weights, in numpy: the tasks, the trainer, the run the page
watches, and writing what a run made."""
