"""`trueup run`: the loop, status, history, lock, logs and helper supervision."""
