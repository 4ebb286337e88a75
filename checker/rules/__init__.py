"""Rules: a flush condition read from C (an expression, a spec file or a kernel tree)
into a formula."""
