"""The test suite, a package so that pytest puts the repository root, not tests/, on sys.path:
then tests/kernels cannot shadow an installed package named ``kernels`` (which transformers
looks for)."""
