// Exact float equality is the point: generated values must repeat bit for bit.
#![allow(clippy::float_cmp)]

use super::*;

fn ctx(seed: u64, secs: f64) -> Context {
    Context {
        seed,
        path: Path::resource(3303, 0, 5700),
        now: Instant::from_micros((secs * 1e6) as u64),
        unix_origin: 1_700_000_000,
        sample_us: S,
    }
}

fn float(g: &Generator, c: &Context, walk: &mut Option<WalkState>) -> f64 {
    g.value(ResourceType::Float, c, walk).as_f64().unwrap()
}

fn series(g: &Generator, seed: u64, n: usize) -> Vec<f64> {
    let mut walk = None;
    (0..n)
        .map(|i| float(g, &ctx(seed, i as f64), &mut walk))
        .collect()
}

const S: u64 = DEFAULT_SAMPLE_US;

#[test]
fn uniform_is_deterministic_and_bounded() {
    let g = Generator::Uniform {
        min: -5.0,
        max: 5.0,
        every_us: Some(S),
    };
    let a = series(&g, 7, 500);
    assert_eq!(a, series(&g, 7, 500));
    assert_ne!(a, series(&g, 8, 500));
    assert!(a.iter().all(|v| (-5.0..=5.0).contains(v)));
    // Spread over the range, not stuck.
    assert!(a.iter().any(|v| *v < -4.0) && a.iter().any(|v| *v > 4.0));
}

#[test]
fn reads_within_one_interval_agree() {
    let g = Generator::Uniform {
        min: 0.0,
        max: 1.0,
        every_us: Some(S),
    };
    let mut w = None;
    assert_eq!(
        float(&g, &ctx(1, 3.1), &mut w),
        float(&g, &ctx(1, 3.9), &mut w)
    );
    assert_ne!(
        float(&g, &ctx(1, 3.9), &mut w),
        float(&g, &ctx(1, 4.0), &mut w)
    );
}

#[test]
fn uniform_with_zero_interval_is_a_per_device_constant() {
    let g = Generator::Uniform {
        min: 0.0,
        max: 100.0,
        every_us: Some(0),
    };
    let a = series(&g, 3, 50);
    assert!(a.iter().all(|v| *v == a[0]));
    assert_ne!(a[0], series(&g, 4, 1)[0]);
}

#[test]
fn walk_is_bounded_smooth_and_cache_independent() {
    let g = Generator::Walk {
        min: 10.0,
        max: 20.0,
        step: 0.5,
        every_us: Some(S),
    };
    let a = series(&g, 11, 2000);
    assert!(a.iter().all(|v| (10.0..=20.0).contains(v)));
    assert!(a.windows(2).all(|w| (w[1] - w[0]).abs() <= 0.5 + 1e-9));
    assert_ne!(a, series(&g, 12, 2000));
    // Reading only now and then gives the same values as reading every step.
    let mut w = None;
    for i in [5usize, 17, 1999, 3] {
        assert_eq!(float(&g, &ctx(11, i as f64), &mut w), a[i]);
    }
}

#[test]
fn sine_has_its_shape() {
    let g = Generator::Sine {
        period_us: 60 * S,
        amplitude: 2.0,
        offset: 20.0,
        every_us: Some(S),
    };
    let a = series(&g, 1, 60);
    assert!((a[0] - 20.0).abs() < 1e-9);
    assert!((a[15] - 22.0).abs() < 1e-9);
    assert!((a[30] - 20.0).abs() < 1e-9);
    assert!((a[45] - 18.0).abs() < 1e-9);
    assert_eq!(a, series(&g, 2, 60), "a sine does not depend on the seed");
}

#[test]
fn counter_progresses_every_n_seconds() {
    let g = Generator::Counter {
        start: 100.0,
        step: 5.0,
        every_us: Some(10 * S),
    };
    let mut w = None;
    let at = |s: f64, w: &mut Option<WalkState>| g.value(ResourceType::Integer, &ctx(0, s), w);
    assert_eq!(at(0.0, &mut w), Value::Integer(100));
    assert_eq!(at(9.9, &mut w), Value::Integer(100));
    assert_eq!(at(10.0, &mut w), Value::Integer(105));
    assert_eq!(at(95.0, &mut w), Value::Integer(145));
}

#[test]
fn cycle_and_now() {
    let g = Generator::Cycle {
        values: vec![Value::String("a".into()), Value::String("b".into())],
        every_us: Some(S),
    };
    let mut w = None;
    let kind = ResourceType::String;
    assert_eq!(
        g.value(kind, &ctx(0, 0.0), &mut w),
        Value::String("a".into())
    );
    assert_eq!(
        g.value(kind, &ctx(0, 1.0), &mut w),
        Value::String("b".into())
    );
    assert_eq!(
        g.value(kind, &ctx(0, 2.5), &mut w),
        Value::String("a".into())
    );
    let now = Generator::Now.value(ResourceType::Time, &ctx(0, 42.7), &mut w);
    assert_eq!(now, Value::Time(1_700_000_042));
}

#[test]
fn check_rejects_nonsense() {
    let bad = Generator::Uniform {
        min: 2.0,
        max: 1.0,
        every_us: Some(S),
    };
    assert!(bad.check(ResourceType::Float).unwrap_err().contains("min"));
    let walk = Generator::Walk {
        min: 0.0,
        max: 1.0,
        step: -1.0,
        every_us: Some(S),
    };
    assert!(walk.check(ResourceType::Float).is_err());
    let sine = Generator::Sine {
        period_us: 0,
        amplitude: 1.0,
        offset: 0.0,
        every_us: Some(S),
    };
    assert!(sine.check(ResourceType::Float).is_err());
    assert!(Generator::Now.check(ResourceType::String).is_err());
    let c = Generator::Constant(Value::Integer(1));
    assert!(c.check(ResourceType::String).is_err());
    assert!(c.check(ResourceType::Integer).is_ok());
    assert!(
        Generator::Cycle {
            values: vec![],
            every_us: Some(S)
        }
        .check(ResourceType::Integer)
        .is_err()
    );
}
