# NVIDIA Triton (NGC) with what the failurelens python-backend models need beyond onnxruntime:
# the feature-attack models (<extractor>__attack) convert the extractor's ONNX graph to torch
# with onnx2torch and run gradient ascent on the GPU. Versions as in requirements.lock.
FROM nvcr.io/nvidia/tritonserver:24.10-py3
RUN pip install --no-cache-dir torch==2.15.0 onnx==1.23.2 onnx2torch==1.5.15 numpy==1.26.4
