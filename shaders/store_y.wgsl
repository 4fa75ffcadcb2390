// store_y.wgsl — the epilogue shared by matmul.wgsl and matvec.wgsl, appended to both by
// kernels::source. It uses their common bindings b (bias), y (output) and Params p:
//   Y[r, c0 + col] = product, plus b[c0 + col] (flags bit 0), plus Y (bit 1), or times silu(Y)
//   (bit 2: Y holds the gate of a SwiGLU and the product is its up projection;
//   reference::ops::swiglu's formula).
// matches: reference::ops::matmul, reference::ops::swiglu

fn store_y(r: u32, col: u32, product: f32) {
    var v = product;
    if ((p.flags & 1u) != 0u) {
        v += b[p.c0 + col];
    }
    let at = p.y_offset + r * p.y_stride + p.c0 + col;
    if ((p.flags & 2u) != 0u) {
        v += y[at];
    }
    if ((p.flags & 4u) != 0u) {
        let g = y[at];
        v = g / (1.0 + exp(-g)) * v;
    }
    y[at] = v;
}
