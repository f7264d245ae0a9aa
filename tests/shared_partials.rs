//! Reductions over the same input share their partial tasks: the input is computed or read
//! once per chunk, whatever the number of reductions over it.

use spillway::Session;

fn formula(s: &Session, n: usize, m: usize, cr: usize) -> spillway::Array {
    let i = s.arange(n, [cr]).unwrap().insert_axis(1).unwrap();
    let j = s.arange(m, [m]).unwrap().insert_axis(0).unwrap();
    ((&i * 0.001) + (&j * 0.0007)).unwrap().sin().unwrap()
}

#[test]
fn standardising_computes_x_once_for_both_reductions() {
    let s = Session::builder().memory_limit("64MiB").build().unwrap();
    let (n, m) = (400, 30);
    let x = formula(&s, n, m, 50);
    let y = ((&x - &x.mean(0).unwrap()).unwrap() / &x.std(0, 0.0).unwrap()).unwrap();
    let plan = y.plan().unwrap();
    let text = plan.explain();
    assert!(
        text.contains("mean(axes=[0]) + std(axes=[0]) partial — 8 tasks"),
        "{text}"
    );
    let got = y.compute::<f64>().unwrap();
    let xs = ndarray::Array2::from_shape_fn((n, m), |(i, j)| {
        (i as f64 * 0.001 + j as f64 * 0.0007).sin()
    });
    let mean = xs.mean_axis(ndarray::Axis(0)).unwrap();
    let std = xs.std_axis(ndarray::Axis(0), 0.0);
    for ((i, j), v) in got
        .into_dimensionality::<ndarray::Ix2>()
        .unwrap()
        .indexed_iter()
    {
        let want = (xs[[i, j]] - mean[j]) / std[j];
        assert!(
            (v - want).abs() <= 1e-9 * want.abs().max(1.0),
            "{i},{j}: {v} vs {want}"
        );
    }
}

#[test]
fn a_persisted_array_is_read_back_once_for_two_reductions() {
    // W2 in miniature: the persisted chunks spill, and each is read back once.
    let s = Session::builder()
        .memory_limit("2MiB")
        .tile_bytes(4096)
        .compressed_tier(false)
        .build()
        .unwrap();
    let x = formula(&s, 2_000, 250, 200).persist().unwrap();
    let spilled = s.memory_report().store.disk_bytes;
    assert!(spilled > 0);
    let z = ((((&x * &x).unwrap() + (&x * 3.0)).unwrap().mean(0).unwrap()) + &x.mean(0).unwrap())
        .unwrap();
    let before = s.memory_report().store.bytes_read_back;
    let got = z.compute::<f64>().unwrap();
    let read = s.memory_report().store.bytes_read_back - before;
    // At most every chunk once (a chunk kept hot through the persist may be demoted to
    // make room and read back once); two passes would read some chunks twice.
    let total = 2_000 * 250 * 8;
    assert!(
        read <= total,
        "read back {read} bytes of a {total}-byte array"
    );
    for (j, v) in got.iter().enumerate() {
        let want: f64 = (0..2_000)
            .map(|i| {
                let x = (i as f64 * 0.001 + j as f64 * 0.0007).sin();
                x * x + 3.0 * x + x
            })
            .sum::<f64>()
            / 2_000.0;
        assert!(
            (v - want).abs() <= 1e-9 * want.abs().max(1.0),
            "{j}: {v} vs {want}"
        );
    }
}
