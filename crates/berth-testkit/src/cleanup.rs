//! Cleanup actions that run when the guard drops, including while a failing test unwinds.

/// One registered action and what it cleans up.
type Action = (String, Box<dyn FnOnce() -> anyhow::Result<()>>);

/// A stack of cleanup actions, run last-in first-out on drop. Failures are reported on stderr
/// and the remaining actions still run.
#[derive(Default)]
pub struct Cleanup {
    actions: Vec<Action>,
}

impl Cleanup {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `action`, described by `what` in any failure report.
    pub fn defer(
        &mut self,
        what: impl Into<String>,
        action: impl FnOnce() -> anyhow::Result<()> + 'static,
    ) {
        self.actions.push((what.into(), Box::new(action)));
    }

    /// Runs every action now and reports whether all succeeded.
    pub fn run(&mut self) -> bool {
        let mut ok = true;
        while let Some((what, action)) = self.actions.pop() {
            if let Err(e) = action() {
                eprintln!("cleanup: {what}: {e:#}");
                ok = false;
            }
        }
        ok
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.run();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    #[test]
    fn runs_in_reverse_even_on_panic() {
        let log = Rc::new(RefCell::new(Vec::new()));
        let l2 = log.clone();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut c = Cleanup::new();
            let (a, b) = (l2.clone(), l2.clone());
            c.defer("first", move || {
                a.borrow_mut().push(1);
                Ok(())
            });
            c.defer("second", move || {
                b.borrow_mut().push(2);
                anyhow::bail!("fails but does not stop the rest")
            });
            panic!("test failed");
        }));
        assert!(result.is_err());
        assert_eq!(*log.borrow(), vec![2, 1]);
    }
}
