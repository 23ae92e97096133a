"""What tests and benchmarks share and the product does not ship: throwaway databases,
`herald` processes, free ports. Kept out of `src/herald` so that nothing only a test
needs (a forced DROP DATABASE, a harness that starts processes) is in the product's
wheel or image; the benchmarks run from a checkout, where `tests` is importable too."""
