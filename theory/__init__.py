"""The mathematics of docs/theory.md as pure functions: no state, no imports of ours.

Array functions accept numpy, JAX or torch arrays alike (through the array-API
namespace of their inputs), so `synthetic/` (JAX) and `llm/` (torch) share one
definition of every formula.
"""
