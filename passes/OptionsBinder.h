//===- OptionsBinder.h - One declaration per option, two front ends -*- C++
//-*-===//
//
// Binds the fields of an options struct to command-line options so that each
// option is declared once, in the struct's `bindOptions(OptionsBinder &)`
// (the shape of IREE's `Pipelines/Options.h`): `moec` binds the structs to the
// process's global options, `moec-opt --moec-pipeline="..."` binds the same
// structs to a pass pipeline's options, and library callers fill the structs.
//
//===----------------------------------------------------------------------===//

#ifndef MOEC_PASSES_OPTIONSBINDER_H
#define MOEC_PASSES_OPTIONSBINDER_H

#include "mlir/Pass/PassOptions.h"
#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Error.h"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mlir::moec {

/// Declares command-line options that write into the fields of an options
/// struct. The options keep their own values while parsing; `store()` then
/// copies every parsed value into its field (and checks choices), so a field
/// is never touched by whatever later resets the command line (lld does).
class OptionsBinder {
public:
  /// Binds to the process's global options, listed under `category`.
  static OptionsBinder global(llvm::cl::OptionCategory &category) {
    return OptionsBinder(&category, nullptr);
  }
  /// Binds to the options of a pass pipeline (`parent`), which parses them
  /// from its `key=value` text.
  static OptionsBinder local(mlir::detail::PassOptions &parent) {
    return OptionsBinder(nullptr, &parent);
  }

  OptionsBinder(OptionsBinder &&) = default;
  OptionsBinder(const OptionsBinder &) = delete;
  OptionsBinder &operator=(const OptionsBinder &) = delete;
  ~OptionsBinder() {
    // The global parser keeps pointers to what it registered.
    if (category)
      for (std::unique_ptr<llvm::cl::Option> &option : options)
        option->removeArgument();
  }

  /// Binds the option `name` (empty for a positional one) to `value`, whose
  /// current content is the option's default; `mods` are `llvm::cl`
  /// modifiers (`cl::desc`, `cl::value_desc`, `cl::Hidden`, ...).
  template <typename T, typename... Mods>
  void opt(llvm::StringRef name, T &value, Mods &&...mods) {
    llvm::cl::opt<T> *option =
        add<T>(name, llvm::cl::init(value), std::forward<Mods>(mods)...);
    stores.push_back([option, &value]() -> llvm::Error {
      value = option->getValue();
      return llvm::Error::success();
    });
  }

  /// Binds the option `name` to `value`, which holds a value only when the
  /// option is given.
  template <typename T, typename... Mods>
  void opt(llvm::StringRef name, std::optional<T> &value, Mods &&...mods) {
    llvm::cl::opt<T> *option = add<T>(name, std::forward<Mods>(mods)...);
    bool isGlobal = category != nullptr;
    stores.push_back([option, &value, isGlobal]() -> llvm::Error {
      if (wasGiven(*option, isGlobal))
        value = option->getValue();
      return llvm::Error::success();
    });
  }

  /// Binds the option `name`, spelled as one of the keys of `choices`, to
  /// `value`, which gets the chosen key's value; another spelling fails
  /// `store()` with "unknown <name> '<text>'[ for --<name>]; expected ...".
  template <typename T, typename... Mods>
  void choice(llvm::StringRef name, T &value,
              llvm::ArrayRef<std::pair<llvm::StringRef, T>> choices,
              Mods &&...mods) {
    std::string initial;
    for (const auto &[key, choiceValue] : choices)
      if (choiceValue == value && initial.empty())
        initial = key.str();
    llvm::cl::opt<std::string> *option = add<std::string>(
        name, llvm::cl::init(initial), std::forward<Mods>(mods)...);
    // "a, b or c", for the error.
    std::vector<std::pair<std::string, T>> table;
    std::string expected;
    for (const auto &[key, choiceValue] : choices) {
      if (!table.empty())
        expected += table.size() + 1 == choices.size() ? " or " : ", ";
      expected += key.str();
      table.emplace_back(key.str(), choiceValue);
    }
    std::string where = category ? (" for --" + name).str() : "";
    stores.push_back([option, &value, table, expected, where,
                      noun = name.str()]() -> llvm::Error {
      for (const auto &[key, choiceValue] : table)
        if (option->getValue() == key) {
          value = choiceValue;
          return llvm::Error::success();
        }
      return llvm::createStringError("unknown " + noun + " '" +
                                     option->getValue() + "'" + where +
                                     "; expected " + expected);
    });
  }

  /// Copies every parsed option into its field; the first bad choice is an
  /// error (the other fields are still stored).
  llvm::Error store() const {
    llvm::Error first = llvm::Error::success();
    for (const std::function<llvm::Error()> &storeOne : stores)
      if (llvm::Error error = storeOne(); error && !first)
        first = std::move(error);
      else
        llvm::consumeError(std::move(error));
    return first;
  }

private:
  OptionsBinder(llvm::cl::OptionCategory *category,
                mlir::detail::PassOptions *parent)
      : category(category), parent(parent) {}

  /// Declares the option `name` of type `T` in the global options or in the
  /// pipeline's; the binder owns it.
  template <typename T, typename... Mods>
  llvm::cl::opt<T> *add(llvm::StringRef name, Mods &&...mods) {
    if (category) {
      auto option = std::make_unique<llvm::cl::opt<T>>(
          name, llvm::cl::cat(*category), std::forward<Mods>(mods)...);
      llvm::cl::opt<T> *result = option.get();
      options.push_back(std::move(option));
      return result;
    }
    auto option = std::make_unique<mlir::detail::PassOptions::Option<T>>(
        *parent, name, std::forward<Mods>(mods)...);
    // Pipeline options show their type (`<long>`), as the passes' do.
    option->setValueStr("");
    llvm::cl::opt<T> *result = option.get();
    options.push_back(std::move(option));
    return result;
  }

  /// Whether the command line (`isGlobal`) or the pipeline text gave
  /// `option` a value.
  template <typename T>
  static bool wasGiven(llvm::cl::opt<T> &option, bool isGlobal) {
    if (isGlobal)
      return option.getNumOccurrences() > 0;
    return static_cast<mlir::detail::PassOptions::Option<T> &>(option)
        .hasValue();
  }

  llvm::cl::OptionCategory *category;
  mlir::detail::PassOptions *parent;
  std::vector<std::unique_ptr<llvm::cl::Option>> options;
  std::vector<std::function<llvm::Error()>> stores;
};

} // namespace mlir::moec

#endif // MOEC_PASSES_OPTIONSBINDER_H
