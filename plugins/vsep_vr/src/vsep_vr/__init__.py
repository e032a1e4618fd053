"""vsep-vr: VR (UVR vocal-remover) models for vsep, .pth on torch and .onnx on ONNX Runtime."""
