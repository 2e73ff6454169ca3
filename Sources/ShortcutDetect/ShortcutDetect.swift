@_exported import TensorCore
@_exported import ONNXModel
@_exported import GraphEngine
@_exported import Explain
@_exported import Imaging
@_exported import Detectors
@_exported import Audit
