# services/core: what every variant shares and the talk waves away: the line
# protocol, fib, metrics, settings, listening, connection bookkeeping, pools
# and graceful shutdown. Kept import-light: pool workers import fib from here.
