"""Reports: the CI gate, its lockfile, and its JSON, JUnit, SARIF and GitHub outputs."""
