"""The rows of ``jaxotdm sample``'s exact-score Table 3 (:func:`jaxotdm.cli.sample.run_table3`): the baseline
chains, the OT-accelerated rows and the class-conditional rows, each timed from outside the library call."""

from __future__ import annotations

import time

import numpy as np

from jaxotdm.cli.sample import method


def baseline_rows(record, score, schedule, samplers, nfe, ddpm_steps, T, t_end, shape, key):
    """One row per baseline sampler and NFE (DDPM: its own ``ddpm_steps`` chain), from the prior at ``T``."""
    import jax

    from jaxotdm import samplers as SM

    for i, name in enumerate(samplers):
        for b in [ddpm_steps] if name == "ddpm" else list(nfe):
            kwargs = {"num_steps": b, "grid": "uniform"} if name == "ddpm" else {"nfe": b, "grid": "log_snr"}
            t0 = time.perf_counter()
            out = SM.sample(method(name), score, schedule, t_start=T, t_end=t_end,
                            key=jax.random.fold_in(key, 100 * i + b), shape=shape, **kwargs)
            jax.block_until_ready(out.points)
            record({"method": name, "nfe": int(out.nfe), "T_prime": None, "tau": None, "conditional": False,
                    "seconds": time.perf_counter() - t0}, out.points)


def ot_rows(record, score, schedule, xtr, chain, ot_sampler, t_primes, taus, ot_nfe, ot_tol, t_end, num_samples,
             key):
    """One OT solve per ``T'`` (timed apart), then one row per ``tau`` and NFE of the chain after the OT step."""
    import jax

    from jaxotdm import samplers as SM

    for j, tp in enumerate(t_primes):
        t0 = time.perf_counter()
        prior = SM.prepare_ot_prior(schedule, xtr, key=jax.random.fold_in(key, 7000 + j), t_prime=tp, ot_tol=ot_tol)
        jax.block_until_ready(prior.ot_map.heights)
        ot_sec = time.perf_counter() - t0
        cert = float(prior.certificate.max_relative_error)
        for tau in taus:
            for b in ot_nfe:
                t0 = time.perf_counter()
                out = SM.ot_accelerated_sample(score, prior, key=jax.random.fold_in(key, 9000 + j),
                                               num_samples=num_samples, sampler=chain, nfe=b, t_end=t_end, tau=tau,
                                               grid="log_snr")
                jax.block_until_ready(out.points)
                record({"method": f"OT+{ot_sampler}", "nfe": int(out.nfe), "T_prime": tp, "tau": tau,
                        "conditional": False, "seconds": time.perf_counter() - t0, "ot_seconds": ot_sec,
                        "ot_certificate": cert}, out.points)


def conditional_rows(record, xtr, train_labels, schedule, num_samples, T, t_end, nfe, t_primes, taus, ot_nfe,
                       chain, ot_sampler, ot_tol, guidance, key):
    import jax
    import jax.numpy as jnp

    from jaxotdm import samplers as SM

    classes = [int(c) for c in np.unique(train_labels)]
    per = max(1, num_samples // len(classes))
    requested = np.repeat(classes, per)
    cs = SM.ExactClassScores.from_data(xtr, train_labels, schedule)
    t0 = time.perf_counter()
    pts = []
    for c in classes:
        o = SM.sample(SM.DDIM(), cs.for_class(c, guidance), schedule, t_start=T, t_end=t_end, nfe=max(nfe),
                      grid="log_snr", key=jax.random.fold_in(key, 500 + c), shape=(per, xtr.shape[1]))
        pts.append(o.points)
    record({"method": "ddim", "nfe": int(o.nfe), "T_prime": None, "tau": None, "conditional": True,
            "guidance": guidance, "seconds": time.perf_counter() - t0}, jnp.concatenate(pts), requested)
    tp = t_primes[0]
    t0 = time.perf_counter()
    cprior = SM.prepare_conditional_ot_prior(schedule, xtr, train_labels, key=jax.random.fold_in(key, 8000),
                                             t_prime=tp, ot_tol=ot_tol)
    ot_sec = time.perf_counter() - t0
    cert = max(float(p.certificate.max_relative_error) for p in cprior.priors)
    for tau in taus:
        t0 = time.perf_counter()
        pts = [cprior.sample(cs, label=c, key=jax.random.fold_in(key, 600 + c), num_samples=per, guidance=guidance,
                             sampler=chain, nfe=ot_nfe[-1], t_end=t_end, tau=tau, grid="log_snr").points
               for c in classes]
        record({"method": f"OT+{ot_sampler}", "nfe": ot_nfe[-1], "T_prime": tp, "tau": tau, "conditional": True,
                "guidance": guidance, "seconds": time.perf_counter() - t0, "ot_seconds": ot_sec,
                "ot_certificate": cert}, jnp.concatenate(pts), requested)
