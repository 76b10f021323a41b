//! Proves the whole toolchain from a clean clone: libtorch is found, linked,
//! loaded at run time through the rpath, and computes.

use nasfleet_torch::device::DeviceSpec;
use nasfleet_torch::tch::{self, Device, Kind, Tensor};

#[test]
fn a_real_libtorch_matmul_and_gradient() {
    let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).reshape([2, 2]);
    let b = Tensor::from_slice(&[5.0f32, 6.0, 7.0, 8.0]).reshape([2, 2]);
    let c = a.matmul(&b);
    let got: Vec<f32> = Vec::try_from(c.flatten(0, -1)).unwrap();
    assert_eq!(got, vec![19.0, 22.0, 43.0, 50.0]);

    let x = Tensor::from_slice(&[3.0f64]).set_requires_grad(true);
    let y = (&x * &x).sum(Kind::Double);
    y.backward();
    assert_eq!(x.grad().double_value(&[0]), 6.0);
}

#[test]
fn device_specs_parse_and_cpu_resolves() {
    assert_eq!("cpu".parse::<DeviceSpec>().unwrap().resolve().unwrap(), Device::Cpu);
    assert_eq!("cuda:3".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(3));
    assert!("gpu".parse::<DeviceSpec>().is_err());
    if !tch::Cuda::is_available() {
        assert!(DeviceSpec::Cuda(0).resolve().is_err());
    }
}
