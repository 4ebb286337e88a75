"""Engines: the model's interpretations (the step function, the z3 relation, explicit
states, the every-N encoding) and the checks built on them."""
