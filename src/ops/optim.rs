//! (placeholder: this op family is being written)
