//! Optimisation never changes values (bit for bit for element-wise work, within a tight
//! tolerance for reductions) and never adds tasks.

use proptest::prelude::*;
use spillway::Session;

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn optimised_equals_unoptimised(rows in 1usize..40, cols in 1usize..12, cr in 1usize..10, cc in 1usize..6, c in -2.0..2.0f64, seed in any::<u64>()) {
        let on = Session::builder().memory_limit("32MiB").tile_bytes(128).build().unwrap();
        let off = Session::builder().memory_limit("32MiB").optimize(false).build().unwrap();
        let build = |s: &Session| {
            let x = s.random_normal(&[rows, cols], [cr.min(rows), cc.min(cols)], seed).unwrap();
            let m = x.mean(0).unwrap();
            // `x.mean(0)` twice, a no-op cast and rechunk, a broadcast, a where.
            let centred = (&x - &m).unwrap();
            let again = (&centred + &x.mean(0).unwrap()).unwrap().astype(spillway::DType::F64);
            let y = again.gt(c).unwrap().where_(&(&again * 2.0), &(c - &again)).unwrap().rechunk([cr.min(rows), cc.min(cols)]).unwrap();
            let total = y.std(None, 0.0).unwrap();
            // Element-wise only: must agree bit for bit.
            let e = ((&x * 3.0) - &x.sin().unwrap()).unwrap().astype(spillway::DType::F64).rechunk([cr.min(rows), cc.min(cols)]).unwrap();
            let e = e.gt(c).unwrap().where_(&e, &(&x + &x).unwrap()).unwrap();
            (y, total, e)
        };
        let (y1, t1, e1) = build(&on);
        let (y0, t0, e0) = build(&off);
        prop_assert_eq!(e1.compute::<f64>().unwrap(), e0.compute::<f64>().unwrap());
        // Downstream of a reduction, summation order (tiles vs chunks) may move the last bits.
        let a = y1.compute::<f64>().unwrap();
        let b = y0.compute::<f64>().unwrap();
        prop_assert!(a.iter().zip(b.iter()).all(|(p, q)| (p - q).abs() <= 1e-12 * q.abs().max(1.0)));
        let (v1, v0): (f64, f64) = (t1.compute_scalar().unwrap(), t0.compute_scalar().unwrap());
        prop_assert!((v1 - v0).abs() <= 1e-12 * v0.abs().max(1.0), "{} vs {}", v1, v0);
        prop_assert!(t1.plan().unwrap().num_tasks() <= t0.plan().unwrap().num_tasks());
    }
}
