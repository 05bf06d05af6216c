use crate::sync::Arc;
use crate::Builder;
use loom::sync::atomic::{AtomicUsize, Ordering};

#[test]
fn every_accepted_job_runs_exactly_once() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(2);
    b.check(|| {
        let pool = Builder::new().num_threads(2).build().unwrap();
        let runs = Arc::new([
            AtomicUsize::new(0),
            AtomicUsize::new(0),
            AtomicUsize::new(0),
        ]);
        for i in 0..3 {
            let runs = runs.clone();
            pool.execute(move || {
                runs[i].fetch_add(1, Ordering::Relaxed);
            });
        }
        pool.shutdown();
        for r in runs.iter() {
            assert_eq!(r.load(Ordering::Relaxed), 1);
        }
    });
}
