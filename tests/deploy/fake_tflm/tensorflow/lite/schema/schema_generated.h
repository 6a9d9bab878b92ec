// Test stand-in for TFLM's schema header: just what tinynas_runner.cc uses.
#ifndef FAKE_TFLM_SCHEMA_GENERATED_H_
#define FAKE_TFLM_SCHEMA_GENERATED_H_

#include <cstdint>
#include <cstring>

#define TFLITE_SCHEMA_VERSION (3)

namespace tflite {

class Model {
 public:
  uint32_t version() const { return 3; }
};

// The real GetModel reinterprets the flatbuffer; the stand-in checks the file identifier.
inline const Model* GetModel(const void* buf) {
  static Model model;
  return std::memcmp(static_cast<const char*>(buf) + 4, "TFL3", 4) == 0 ? &model : nullptr;
}

}  // namespace tflite

#endif
