// Access review: tick several grants (or all on the page) and certify them with one reason.
// Without this script the page still works: the server refuses an empty selection.
(function () {
  const form = document.querySelector("[data-bulk-certify]");
  if (!form) return;
  const boxes = Array.from(document.querySelectorAll(`input[name="items"][form="${form.id}"]`));
  const all = document.querySelector("[data-select-all]");
  const count = form.querySelector("[data-selected-count]");
  const buttons = form.querySelectorAll("button[name=outcome]");

  function update() {
    const selected = boxes.filter((box) => box.checked).length;
    count.textContent = selected
      ? `${selected} grant${selected === 1 ? "" : "s"} selected`
      : "Select grants below, then give one reason.";
    buttons.forEach((button) => { button.disabled = selected === 0; });
    if (all) {
      all.checked = selected > 0 && selected === boxes.length;
      all.indeterminate = selected > 0 && selected < boxes.length;
    }
  }

  if (all) {
    all.addEventListener("change", () => {
      boxes.forEach((box) => { box.checked = all.checked; });
      update();
    });
  }
  boxes.forEach((box) => box.addEventListener("change", update));
  update();
})();
