// AudioWorklet processor: gathers the (mono) input into chunks of `chunk` samples and posts
// each as a Float32Array to the page, which sends it over the WebSocket (dtype=float32,
// rate = the AudioContext's rate; the server resamples to 16 kHz).
class PcmChunker extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.size = Math.max(128, (options.processorOptions && options.processorOptions.chunk) || 4800);
    this.buf = new Float32Array(this.size);
    this.filled = 0;
  }

  process(inputs) {
    const channels = inputs[0];
    if (channels && channels.length > 0) {
      const n = channels[0].length;
      for (let i = 0; i < n; i++) {
        let v = 0;
        for (let c = 0; c < channels.length; c++) v += channels[c][i];
        this.buf[this.filled++] = v / channels.length;
        if (this.filled === this.size) {
          this.port.postMessage(this.buf, [this.buf.buffer]);
          this.buf = new Float32Array(this.size);
          this.filled = 0;
        }
      }
    }
    return true; // keep running until the node is disconnected
  }
}

registerProcessor("pcm-chunker", PcmChunker);
