//! `Backend::make_process_default` in a real process environment. Kept in its own test binary:
//! it sets `BURN_DEVICE`, which no other test of this binary reads.

use burn::backend::DispatchDevice;
use burn::tensor::Device;
use rnn_backend::Backend;

fn default_is(expected: &str) -> bool {
    match Device::default().as_dispatch() {
        DispatchDevice::Flex(_) => expected == "flex",
        #[allow(deprecated)]
        DispatchDevice::NdArray(_) => expected == "ndarray",
        _ => false,
    }
}

#[test]
fn the_chosen_backend_becomes_burns_default_device_unless_the_user_chose() {
    // A user's own BURN_DEVICE wins.
    // SAFETY: this binary's only test; no other thread reads the environment.
    unsafe { std::env::set_var("BURN_DEVICE", "ndarray") };
    unsafe { Backend::Flex.make_process_default() };
    assert!(default_is("ndarray"), "{:?}", Device::default());

    // Otherwise the chosen backend replaces Burn's GPU-first default.
    unsafe { std::env::remove_var("BURN_DEVICE") };
    unsafe { Backend::Flex.make_process_default() };
    assert_eq!(std::env::var("BURN_DEVICE").as_deref(), Ok("flex"));
    assert!(default_is("flex"), "{:?}", Device::default());
}
