//! The tuner's tests: interleaved timing, rounds of tuning, and the table deciding each family's rung.

use super::*;

#[test]
fn tuning_repeats_the_step_for_the_shapes_its_choices_bring() {
    // a step that meets matmul B only once A is in the table (as a Winograd or GEMM rung brings its GEMMs'
    // shapes): round 1 times A, round 2 times B, round 3 meets nothing new
    let mut rng = Rng::new(3);
    let (a, b) = (Tensor::randn(&[2, 7, 5], &mut rng), Tensor::randn(&[2, 5, 6], &mut rng));
    let (c, d) = (Tensor::randn(&[2, 7, 6], &mut rng), Tensor::randn(&[2, 6, 3], &mut rng));
    let ka = Key::Matmul { a: vec![2, 7, 5], ta: false, b: vec![2, 5, 6], tb: false };
    let kb = Key::Matmul { a: vec![2, 7, 6], ta: false, b: vec![2, 6, 3], tb: false };
    let mut runs = 0;
    let step = || -> Result<()> {
        runs += 1;
        matmul::matmul_t(&a, false, &b, false)?;
        if has(&ka) {
            matmul::matmul_t(&c, false, &d, false)?;
        }
        Ok(())
    };
    let choices = tune_step(step, 1, false).unwrap();
    assert_eq!(choices.iter().map(|c| c.key.clone()).collect::<Vec<_>>(), vec![ka.clone(), kb.clone()]);
    assert_eq!(runs, 3);
    // skip_known: nothing left to time
    assert!(tune_step(|| matmul::matmul_t(&a, false, &b, false).map(drop), 1, true).unwrap().is_empty());
}

#[test]
fn candidates_are_timed_in_interleaved_rounds() {
    let log = RefCell::new(Vec::new());
    let runs: Vec<(&'static str, Run)> = ["a", "b", "c"]
        .into_iter()
        .map(|name| {
            let log = &log;
            let run = move || {
                log.borrow_mut().push(name);
                Ok(())
            };
            (name, Box::new(run) as Run)
        })
        .collect();
    let times = time_interleaved(2, &runs).unwrap();
    assert_eq!(times.iter().map(|t| t.0).collect::<Vec<_>>(), ["a", "b", "c"]);
    assert!(times.iter().all(|t| t.1.is_finite() && t.1 >= 0.0), "{times:?}");
    // one warm-up each, then two rounds of all three
    drop(runs);
    assert_eq!(log.into_inner().concat(), "abcabcabc");
}

#[test]
fn every_candidate_is_timed_and_the_table_decides_the_taped_ops_rung() {
    // shapes no other test uses: the table is process-wide
    let mm = Key::Matmul { a: vec![3, 24, 40], ta: false, b: vec![3, 40, 36], tb: false };
    let times = measure(&mm, 1).unwrap();
    assert_eq!(times.iter().map(|t| t.0).collect::<Vec<_>>(), mm.candidates());
    assert!(times.iter().all(|t| t.1.is_finite() && t.1 >= 0.0), "{times:?}");
    let cv = Key::Conv { x: vec![2, 5, 11, 9], w: vec![7, 5, 3, 3], padding: 1, bias: true };
    let times = measure(&cv, 1).unwrap();
    assert!(times.iter().any(|t| t.0 == "v8_winograd4") && times.len() == 4, "{times:?}");

    let mut rng = Rng::new(1);
    let (a, b) = (Tensor::randn(&[3, 24, 40], &mut rng), Tensor::randn(&[3, 40, 36], &mut rng));
    assert_eq!(
        matmul::pick(&a, false, &b, false),
        matmul::rule(a.shape(), false, b.shape(), false),
        "no entry: the rule"
    );
    set(&mm, "v3_blocked");
    assert_eq!(matmul::pick(&a, false, &b, false), MatmulKernel::Blocked, "an entry: the table");
    let (x, w) = (Tensor::randn(&[2, 5, 11, 9], &mut rng), Tensor::randn(&[7, 5, 3, 3], &mut rng));
    let bias = Tensor::randn(&[7], &mut rng);
    assert_eq!(conv::pick_tuned(&x, &w, Some(&bias), 1), ConvKernel::pick(w.shape()));
    set(&cv, "v3_blocked");
    assert_eq!(conv::pick_tuned(&x, &w, Some(&bias), 1), ConvKernel::Blocked);
    assert_eq!(conv::pick_tuned(&x, &w, None, 1), ConvKernel::pick(w.shape()), "the bias is part of the key");
    // collecting sees the taped op's lookups, once per shape
    let keys = collect(|| {
        crate::ops::matmul::matmul_t(&a, false, &b, false)?;
        crate::ops::matmul::matmul_t(&a, false, &b, false)?;
        Ok(())
    })
    .unwrap();
    assert_eq!(keys, vec![mm]);

    // the FFT family: every fast rung timed on the FF-Parser, the table's entry decides the taped op's rung
    // (forward and backward), and the FF-Parser's lookup is collected; 8×16 keeps both axes on the named
    // rung (powers of two: v2 takes them under Stockham, v5 under PrivateMixed)
    let xf = Tensor::randn(&[1, 2, 8, 16], &mut rng).with_grad();
    let map = Tensor::randn(&[2, 8, 16], &mut rng);
    let ff = Key::Fft { x: vec![1, 2, 8, 16] };
    let times = measure(&ff, 1).unwrap();
    assert_eq!(times.iter().map(|t| t.0).collect::<Vec<_>>(), ff.candidates());
    assert_eq!(FftKernel::pick_for(xf.shape()), FftKernel::pick(), "no entry: the rule");
    let ff_step = || -> Result<()> {
        crate::autograd::clear();
        let y = fft::ff_parser(&xf, &map)?;
        crate::autograd::backward(&crate::ops::reduce::sum(&y, &[0, 1, 2, 3], false)?)?;
        Ok(())
    };
    assert_eq!(collect(ff_step).unwrap(), vec![ff.clone()]);
    for (rung, kernel) in [("v2_stockham", "fft_v2"), ("v5_private_mixed", "fft_v5")] {
        set(&ff, rung);
        assert_eq!(FftKernel::pick_for(xf.shape()).name(), rung);
        crate::ops::work::start();
        ff_step().unwrap();
        let ran: Vec<String> = crate::ops::work::stop().into_iter().flat_map(|c| c.kernels).collect();
        assert!(ran.iter().filter(|k| k.contains("fft_v")).all(|k| k.contains(kernel)), "{rung}: {ran:?}");
        assert!(ran.iter().any(|k| k.contains(kernel)), "{rung}: {ran:?}");
    }

    // fused attention: every width timed, the rule without an entry, the table's entry with one (the kernel
    // label carries the specialised QR), and the taped op's lookup collected
    let qkv = Tensor::randn(&[1, 3 * 2 * 8, 5, 7], &mut rng).with_grad();
    let fa = Key::Flash { qkv: vec![1, 48, 5, 7], heads: 2 };
    let times = measure(&fa, 1).unwrap();
    assert_eq!(times.iter().map(|t| t.0).collect::<Vec<_>>(), fa.candidates());
    let fa_step = || -> Result<()> {
        crate::autograd::clear();
        let y = crate::ops::attention::full_attention(&qkv, 2, 8)?;
        crate::autograd::backward(&crate::ops::reduce::sum(&y, &[0, 1, 2, 3], false)?)?;
        Ok(())
    };
    let fb = Key::FlashBwd { qkv: vec![1, 48, 5, 7], heads: 2 };
    assert_eq!(collect(fa_step).unwrap(), vec![fa.clone(), fb.clone()]);
    let times = measure(&fb, 1).unwrap();
    assert_eq!(times.iter().map(|t| t.0).collect::<Vec<_>>(), fb.candidates());
    // the flash kernels that ran and their width override: the forward's QR, the backward's RR
    let widths = |step: &dyn Fn() -> Result<()>, kernel: &str, width: &str| {
        crate::ops::work::start();
        step().unwrap();
        let ran: Vec<String> = crate::ops::work::stop().into_iter().flat_map(|c| c.kernels).collect();
        let of: Vec<String> = ran.into_iter().filter(|k| k.contains(kernel)).collect();
        assert!(!of.is_empty(), "{kernel} did not run");
        of.iter().map(|k| k.split(' ').find_map(|o| o.strip_prefix(width)).expect("a width").to_string()).collect()
    };
    let all = |v: Vec<String>, want: u32| v.iter().all(|w| *w == want.to_string());
    let (rule_qr, rule_rr) =
        (flash::default_width(&flash::QUERY_RUNGS, 35, 8), flash::default_width(&flash::ROW_RUNGS, 35, 8));
    assert!(all(widths(&fa_step, "flash_forward", "QR="), rule_qr), "no entry: the rule");
    assert!(all(widths(&fa_step, "flash_dq", "RR="), rule_rr), "no entry: the rule");
    for (rung, qr) in [("qr1", 1), ("qr8", 8)] {
        set(&fa, rung);
        assert!(all(widths(&fa_step, "flash_forward", "QR="), qr), "{rung}");
    }
    for (rung, rr) in [("rr1", 1), ("rr4", 4)] {
        set(&fb, rung);
        assert!(all(widths(&fa_step, "flash_dq", "RR="), rr), "{rung}");
        assert!(all(widths(&fa_step, "flash_dkv", "RR="), rr), "{rung}");
    }

    // a conv's dx and dw rungs are keys of their own, met in the backward, each timed for its candidates,
    // and the table's entries decide which kernels dx and dw run whatever the forward's rung: a 1×1 conv
    // (dw: GEMM or v9) and a 3×3 one (dx: Winograd F(4×4) or v9, dw: Winograd F(2×2) or v10)
    for (xs, ws, pad, dx_rungs, dw_rungs) in [
        (
            [2, 6, 8, 12],
            [5, 6, 1, 1],
            0,
            [("v7_gemm", "matmul"), ("v9_uniform", "conv_v9")],
            [("v7_gemm", "matmul"), ("v9_uniform", "dw_v9")],
        ),
        (
            [2, 5, 12, 8],
            [6, 5, 3, 3],
            1,
            [("v8_winograd4", "winograd4"), ("v9_uniform", "conv_v9")],
            [("v6_winograd", "winograd_transforms"), ("v10_reuse", "dw_v10")],
        ),
    ] {
        let (x, w) = (Tensor::randn(&xs, &mut rng).with_grad(), Tensor::randn(&ws, &mut rng).with_grad());
        let dx = Key::ConvDx { x: xs.to_vec(), w: ws.to_vec(), padding: pad };
        let dw = Key::ConvDw { x: xs.to_vec(), w: ws.to_vec(), padding: pad };
        let step = || -> Result<()> {
            crate::autograd::clear();
            let y = conv::conv2d(&x, &w, None, pad)?;
            crate::autograd::backward(&crate::ops::reduce::sum(&y, &[0, 1, 2, 3], false)?)?;
            Ok(())
        };
        let seen = collect(step).unwrap();
        assert!(seen.contains(&dx) && seen.contains(&dw), "{seen:?}");
        for key in [&dx, &dw] {
            let times = measure(key, 1).unwrap();
            assert_eq!(times.iter().map(|t| t.0).collect::<Vec<_>>(), key.candidates());
            assert!(times.iter().all(|t| t.1.is_finite() && t.1 >= 0.0), "{times:?}");
        }
        for (key, op, rungs) in [(&dx, "conv2d.dx", dx_rungs), (&dw, "conv2d.dw", dw_rungs)] {
            for (rung, kernel) in rungs {
                set(key, rung);
                crate::ops::work::start();
                step().unwrap();
                let ran = crate::ops::work::stop();
                let of_op: Vec<_> = ran.iter().filter(|c| c.op == op).flat_map(|c| c.kernels.iter()).collect();
                assert!(!of_op.is_empty() && of_op.iter().any(|k| k.contains(kernel)), "{op} {rung}: {of_op:?}");
            }
        }
    }
}

#[test]
fn a_choice_made_among_other_candidates_is_stale() {
    // a cache written before a rung joined its family must not keep the shape off the new rung
    let key = Key::Matmul { a: vec![3, 41, 8], ta: false, b: vec![3, 8, 52], tb: false };
    let old = ("v3_blocked".to_string(), "v3_blocked,v4_regblock".to_string());
    table().lock().unwrap().insert(key.id(), old);
    assert_eq!(lookup(key.clone()), None, "a stale choice");
    assert!(!has(&key));
    set(&key, "v3_blocked");
    assert_eq!(lookup(key.clone()).as_deref(), Some("v3_blocked"), "chosen among today's candidates");
    // a file from before `among` existed: its entries read as chosen among nothing
    let path = std::env::temp_dir().join(format!("medsegdiff-tune-old-{}.json", std::process::id()));
    std::fs::write(&path, r#"{"adapter": "x", "entries": {"matmul b3": "v5_vec4"}}"#).unwrap();
    let read = read_entries(&path);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(read.get("matmul b3"), Some(&("v5_vec4".to_string(), String::new())));
}
