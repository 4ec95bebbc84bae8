// The differences between LibTorch 1.13 (Debian, the default build) and LibTorch 2.x (a pip
// torch or the LibTorch zip, with CUDA on GPU clusters), each behind one small named guard.
// Code elsewhere uses these names instead of testing TORCH_VERSION_MAJOR itself; the list of
// differences and how each is handled is in docs/building-cuda.md.
#pragma once

#include <torch/version.h>

// scaled_dot_product_attention (with is_causal, the path FlashAttention / memory-efficient
// attention take on a GPU) exists from 2.0 on; 1.13 has only the math written out.
#if TORCH_VERSION_MAJOR >= 2
#define MIXLORA_HAS_SDPA 1
#else
#define MIXLORA_HAS_SDPA 0
#endif

// The CUDA caching allocator's statistics moved: 1.13 has StatType in
// c10::cuda::CUDACachingAllocator, 2.x in c10::CachingDeviceAllocator (c10/core/Allocator.h;
// CUDACachingAllocator re-exports DeviceStats but not StatType). Only meaningful with CUDA.
#if TORCH_VERSION_MAJOR >= 2
#define MIXLORA_ALLOCATOR_STAT_TYPE c10::CachingDeviceAllocator::StatType
#else
#define MIXLORA_ALLOCATOR_STAT_TYPE c10::cuda::CUDACachingAllocator::StatType
#endif
