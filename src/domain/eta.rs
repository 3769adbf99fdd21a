//! Time-to-finish estimates: a running task's own progress rate blended with how long
//! earlier successful tasks of the same type took.

/// Seconds left for a task at `progress` percent after `active_secs` of running.
///
/// Two estimates, each `None` when unknown:
/// - `by_rate`: the remaining percent over the progress rate this attempt has shown;
/// - from history: the mean recorded running time of earlier successful tasks of the
///   type (`typical_secs`) minus the time already spent (never below zero).
///
/// They are blended linearly by progress: weight `p = progress / 100` on the rate and
/// `1 - p` on history. Early in a task the rate rests on little evidence and the history of
/// its type is the better guide; near the end the task's own pace is. With only one
/// estimate available, that one is the answer.
pub fn blend(
    progress: f64,
    active_secs: f64,
    by_rate: Option<f64>,
    typical_secs: Option<f64>,
) -> Option<f64> {
    let by_history = typical_secs
        .filter(|t| t.is_finite() && *t > 0.0)
        .map(|t| (t - active_secs).max(0.0));
    let w = (progress / 100.0).clamp(0.0, 1.0);
    let eta = match (by_rate.filter(|r| r.is_finite()), by_history) {
        (Some(r), Some(h)) => w * r + (1.0 - w) * h,
        (Some(r), None) => r,
        (None, Some(h)) => h,
        (None, None) => return None,
    };
    Some(eta.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::blend;

    #[test]
    fn history_leads_early_and_the_rate_leads_late() {
        // The type usually takes 100 s; this run's rate says 10 s are left.
        let early = blend(10.0, 5.0, Some(10.0), Some(100.0)).unwrap();
        let late = blend(90.0, 5.0, Some(10.0), Some(100.0)).unwrap();
        assert!((early - (0.1 * 10.0 + 0.9 * 95.0)).abs() < 1e-9, "{early}");
        assert!((late - (0.9 * 10.0 + 0.1 * 95.0)).abs() < 1e-9, "{late}");
    }

    #[test]
    fn one_estimate_alone_is_used_and_none_gives_none() {
        assert_eq!(blend(50.0, 10.0, Some(7.0), None), Some(7.0));
        assert_eq!(blend(0.0, 30.0, None, Some(100.0)), Some(70.0));
        assert_eq!(blend(0.0, 300.0, None, Some(100.0)), Some(0.0));
        assert_eq!(blend(50.0, 1.0, None, None), None);
    }
}
