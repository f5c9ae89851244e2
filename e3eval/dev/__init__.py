"""Development fixtures: the tiny test models (`tiny_model`), synthetic rollout pools (`synthetic`) and the embedded
default run (`demo`). Not part of the library's pipeline; the `e3eval dev` and `e3eval demo` commands use them."""
