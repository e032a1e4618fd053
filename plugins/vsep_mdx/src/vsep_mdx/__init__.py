"""vsep-mdx: MDX-Net ONNX models on ONNX Runtime for vsep."""
