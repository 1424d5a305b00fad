// TEMPORARY experiment: candle q8_0 QMatMul vs f32 matmul on tiny.en encoder/decoder shapes.
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use std::time::Instant;
#[test]
fn qbench() {
    let d = Device::Cpu;
    for (m, k, n) in [(1500usize, 384usize, 1536usize), (1500, 384, 384), (1, 384, 51864), (5, 384, 51864)] {
        let x = Tensor::randn(0f32, 1.0, (m, k), &d).unwrap();
        let w = Tensor::randn(0f32, 0.05, (n, k), &d).unwrap();
        let wt = w.t().unwrap();
        let _ = x.matmul(&wt).unwrap();
        let t = Instant::now();
        for _ in 0..10 { let _ = x.matmul(&wt).unwrap(); }
        let f = t.elapsed().as_secs_f64() / 10.0;
        for dt in [GgmlDType::Q8_0, GgmlDType::Q4_0, GgmlDType::F16] {
            let q = QMatMul::from_qtensor(QTensor::quantize(&w, dt).unwrap()).unwrap();
            let _ = q.forward(&x).unwrap();
            let t = Instant::now();
            for _ in 0..10 { let _ = q.forward(&x).unwrap(); }
            let qq = t.elapsed().as_secs_f64() / 10.0;
            eprintln!("{m}x{k}x{n}: f32 {:.2} ms, {dt:?} {:.2} ms", f * 1e3, qq * 1e3);
        }
    }
}
