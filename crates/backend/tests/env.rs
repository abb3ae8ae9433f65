//! `RNN_BACKEND` in a real process environment. Kept in its own test binary: it sets the
//! variable, which no other test of this binary reads.

use rnn_backend::{Backend, BackendError, ENV_VAR};

#[test]
fn rnn_backend_variable_is_read_and_checked() {
    // SAFETY: this binary's only test; no other thread reads the environment.
    unsafe { std::env::set_var(ENV_VAR, "NDARRAY") };
    assert_eq!(Backend::from_env(), Ok(Some(Backend::NdArray)));
    assert_eq!(Backend::resolve(None), Ok(Backend::NdArray));
    assert_eq!(
        Backend::resolve(Some(Backend::Flex)),
        Ok(Backend::Flex),
        "an explicit choice wins"
    );

    unsafe { std::env::set_var(ENV_VAR, "nope") };
    let err = Backend::resolve(None).unwrap_err();
    assert!(matches!(err, BackendError::Unknown { .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "unknown backend 'nope'; valid backends: {}",
            Backend::compiled_names().join(", ")
        )
    );

    unsafe { std::env::remove_var(ENV_VAR) };
    assert_eq!(Backend::resolve(None), Ok(Backend::Flex));
}
