"""Files to pixels, frames and dates, without a model: finding and reading files, safe image decoding,
video sampling, capture times, the model input transform, the CUDA decode path."""
