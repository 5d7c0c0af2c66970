// Forced include for building faiss-node 0.5.1 against Debian's libfaiss 1.7.3, which declares
// idx_t only inside faiss::Index (faiss-node expects the newer namespace-level alias).
#pragma once
#include <faiss/Index.h>
namespace faiss {
using idx_t = Index::idx_t;
}
