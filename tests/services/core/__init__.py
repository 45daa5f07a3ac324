# tests/services/core: unit tests of the shared core (services/core), one module each.
