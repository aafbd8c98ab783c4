// DOM helpers. Data from the API only ever enters the page as text nodes
// (textContent), never as HTML, so nothing a client typed can become markup.

// el("td", {class: "x"}, "text", childNode, ...) -> a new element
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null) node.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function byId(id) {
  return document.getElementById(id);
}

export function clear(node) {
  node.replaceChildren();
}

// The status line of a panel: a message, or nothing; errors in red.
export function setStatus(id, message, isError) {
  const node = byId(id);
  node.textContent = message || "";
  node.classList.toggle("error", Boolean(isError));
}
