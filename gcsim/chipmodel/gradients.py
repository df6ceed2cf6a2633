"""Gradients through the hardware for training with JAX: the quantizers' rounding passes the
gradient straight through, and the cell law may take the gradient of another law (the paper's
linear surrogate for the cubic cell: its forward pass is the real cell, its backward pass
that of f(y) = 19.3 y)."""
from __future__ import annotations


def jax_modules():
    """(jax, jax.numpy): the [train] extra, or SystemExit with the install line when absent."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        raise SystemExit("training needs JAX: pip install -e '.[train]'") from None
    return jax, jnp


def next_token_nll(logits, y):
    """The mean next-token negative log-likelihood of logits [..., T, vocab] for targets y [..., T]."""
    jax, jnp = jax_modules()
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, y[..., None], axis=-1))


def ste_round(x):
    """Straight-through rounding: round in the forward pass, identity gradient."""
    jax, _ = jax_modules()
    return x + jax.lax.stop_gradient(jax.numpy.round(x) - x)


def with_gradient_of(f, f_grad):
    """A function whose value is f(*args) and whose gradient is that of f_grad(*args)
    (both over the same arguments; constants are closed over, not passed)."""
    jax, _ = jax_modules()

    @jax.custom_vjp
    def g(*args):
        return f(*args)

    def fwd(*args):
        return f(*args), args

    def bwd(args, cotangent):
        return jax.vjp(f_grad, *args)[1](cotangent)

    g.defvjp(fwd, bwd)
    return g
