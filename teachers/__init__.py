"""For teachers only: the model solutions of the exercises (not installed with the package)."""
