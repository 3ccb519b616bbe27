//! Tensor creation, determinism of seeded random tensors, and round trips.

use medsegdiff::rng::Rng;
use medsegdiff::Tensor;

#[test]
fn same_seed_gives_identical_random_tensors_across_runs() {
    // Two independent "runs": fresh generators, separate uploads and downloads, bit-for-bit equal.
    let run = |seed| {
        let mut rng = Rng::new(seed);
        let a = Tensor::randn(&[3, 17, 5], &mut rng).to_vec();
        let b = Tensor::rand_uniform(&[1000], -2.0, 3.0, &mut rng).to_vec();
        (a, b)
    };
    let (a1, b1) = run(42);
    let (a2, b2) = run(42);
    assert_eq!(a1.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), a2.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    assert_eq!(b1, b2);
    let (a3, _) = run(43);
    assert_ne!(a1, a3);
    assert!(b1.iter().all(|&v| (-2.0..3.0).contains(&v)));
}

#[test]
fn upload_download_round_trip_and_fills() {
    let data: Vec<f32> = (0..1001).map(|i| i as f32 * 0.5 - 7.0).collect();
    assert_eq!(Tensor::from_slice(&data, &[7, 11, 13]).unwrap().to_vec(), data);
    assert_eq!(Tensor::zeros(&[3, 3]).to_vec(), vec![0.0; 9]);
    assert_eq!(Tensor::ones(&[5]).to_vec(), vec![1.0; 5]);
    assert_eq!(Tensor::full(&[2, 1], -3.5).to_vec(), vec![-3.5; 2]);
}

#[test]
fn bad_shapes_are_errors_that_name_the_shape() {
    let err = Tensor::from_slice(&[1.0, 2.0, 3.0], &[2, 2]).unwrap_err().to_string();
    assert!(err.contains("[2, 2]") && err.contains('3'), "{err}");
    let t = Tensor::zeros(&[2, 3]);
    let err = t.reshape(&[4, 2]).unwrap_err().to_string();
    assert!(err.contains("[2, 3]") && err.contains("[4, 2]"), "{err}");
    assert_eq!(t.reshape(&[3, 2]).unwrap().shape(), &[3, 2]);
}
