def audit_onnx(): pass
class OnnxAuditReport: pass
